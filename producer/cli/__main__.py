"""``python -m producer.cli``: the ``heeros-export`` command."""

from producer.cli.commands import main

main()
