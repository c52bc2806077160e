"""The image scanner's parts that know no registry: what a layer stack has installed, OSV
advisories and their ranges, and version order per ecosystem."""
