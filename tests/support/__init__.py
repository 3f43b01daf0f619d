"""Test support shared by unit, integration and e2e tests: real processes, real data.

Nothing here is a fixture (those live in conftest.py files); these are the helpers the
fixtures and tests build on, written once.
"""
