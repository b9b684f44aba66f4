"""Switchyard's data: workflow definitions, runs, events on the wire, settings.

Imports nothing else of Switchyard; every other package builds on it.
"""
