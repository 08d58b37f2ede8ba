"""Paper-style reports: methods x tasks tables, published numbers, significance tests, plots."""
