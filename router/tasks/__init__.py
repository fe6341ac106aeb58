"""The annotator work loop: claiming tasks under a lease, labeling them, releasing them."""
