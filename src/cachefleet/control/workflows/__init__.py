"""One module per workflow; each imports the node operations (control/nodes.py) and never another
workflow (an import-linter contract). control/reconciler.py composes them into passes."""
