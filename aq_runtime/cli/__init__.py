"""Command-line entry points: argument parsing plus one library call each."""
