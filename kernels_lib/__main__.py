"""`python -m kernels_lib ...`: see kernels_lib.cli."""
from .cli import main

raise SystemExit(main())
