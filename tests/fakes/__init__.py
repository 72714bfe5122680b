"""Stand-ins for external services, speaking their real protocols."""
