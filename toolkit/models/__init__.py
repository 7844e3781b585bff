"""Model catalog (seeds/models.yml), the controller-side model cache and checksums."""
