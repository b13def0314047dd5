"""``python -m og_pipeline`` is the ``og-pipeline`` command (how child processes are started)."""

from og_pipeline.cli import main

main()
