"""How Flux behaves, as this project relies on it: rules, schemas, the apply/diff, bootstrap, takeover, the adoption render."""
