"""Blob storage drivers behind the BlobStore protocol."""
