"""Tests of the AWS API edge."""
