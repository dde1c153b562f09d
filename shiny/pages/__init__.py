"""One module per dashboard page: its UI (`<page>_ui`, a nav panel) and its server
(`<page>_server`) side by side; the page's filters are namespaced by the module."""
