"""Front ends over the lean scoring core: the batch scorer (`score`) and the HTTP API (`serve`)."""
