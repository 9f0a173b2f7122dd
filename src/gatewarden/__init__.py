"""gatewarden."""
