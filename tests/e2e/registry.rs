//! ecrcp's own registry client against the bed's registries: throttling, missing repositories.
