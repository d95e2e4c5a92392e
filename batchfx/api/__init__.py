"""Function blueprints: thin triggers that parse, make one call into batchfx, and respond."""
