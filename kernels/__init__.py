"""Array math on numpy or CuPy arrays: no files, no pipeline knowledge."""
