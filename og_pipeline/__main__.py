"""``python -m og_pipeline`` is the ``og-pipeline`` command (how child processes are started)."""

from og_pipeline.cli import main

# Guarded: a spawned worker process (the sync's writer) imports this module as __mp_main__.
if __name__ == "__main__":
    main()
