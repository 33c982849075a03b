"""What the pages show, computed from the Dashboard's documents: formatting, charts, lineage layout."""
