"""How an image's scan shows in ECR's answers (StartImageScan, DescribeImageScanFindings,
DescribeImages)."""

from __future__ import annotations

from typing import Any

from ecrd.metadata.image_scans import COMPLETE, ImageScan
from ecrd.registry.scanner import severity_counts


def scan_status(scan: ImageScan) -> dict[str, str]:
    return {"status": scan.status, "description": scan.description}


def findings_summary(scan: ImageScan) -> dict[str, Any] | None:
    """imageScanFindingsSummary: once a scan is complete."""
    if scan.status != COMPLETE or scan.findings is None:
        return None
    summary: dict[str, Any] = {"findingSeverityCounts": severity_counts(scan.findings)}
    if scan.completed_at is not None:
        summary["imageScanCompletedAt"] = scan.completed_at
    if scan.advisories_as_of is not None:
        summary["vulnerabilitySourceUpdatedAt"] = scan.advisories_as_of
    return summary
