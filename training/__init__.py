"""Training the built-in model: data, autoencoder, flow UNet, export. See README.md here."""
