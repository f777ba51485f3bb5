"""The kernel database: model sets (`zoo`), extraction into Parquet (`extract`, serial or on Dask via
`cluster`), reading and filtering it (`store`), and counting kernels without weights (`census`)."""
