"""Channel adapters: each turns its platform's updates into neutral messages and replies back."""
