"""Command-line entry points (`aq-*`): argument parsing and one-line errors; the work is the
library's (aq-export and aq-bench also assemble what they print)."""
