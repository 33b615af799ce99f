"""Function templates scaffolded by ``faasbus new`` and run by the watchdog's python mode.

Each sub-folder (``python3``, ``python3-http``) holds a starter ``handler.py`` and a
``requirements.txt``; locate one with ``faasbus.watchdog.template_path(lang)``.
"""
