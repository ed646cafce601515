"""The command-line tools (console scripts and scripts/): video, eval, tiny checkpoint, bags, play, demo."""
