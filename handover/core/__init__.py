"""What every phase needs: the inventory, the read-only client, the one mutation path and its journal, findings, errors, tools, redaction, progress."""
