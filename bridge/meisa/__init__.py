"""Meisa API: call types, httpx client, outcome classification, retry policy, rate governor.

Only this package imports httpx.
"""
