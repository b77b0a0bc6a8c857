"""Willkommen: the Welcome Center Stuttgart's multilingual chatbot."""

__version__ = "0.1.0"
