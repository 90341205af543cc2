"""The inbound APIs' request checks (DESIGN.md §2): what each documents, refused before any
upstream is called, in that API's own words."""
