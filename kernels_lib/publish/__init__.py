"""From notebooks to readers: the papermill runner and each notebook's results (`notebooks`), the static
HTML site (`site`) and notebook 14's widgets (`explore`)."""
