"""Domain services: repositories, blobs, uploads, manifests. No HTTP here."""
