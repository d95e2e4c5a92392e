"""The local Durable Task runtime: history, instance store and the runtime itself."""
