"""Local fakes of the outside services the adapters talk to, speaking their real protocols."""
