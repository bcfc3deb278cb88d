"""Fixed variant grids of small tasks: scikit-learn tables and generated data."""
