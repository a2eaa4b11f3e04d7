"""Layer 6, viz: figures (plots) and the interactive attention explorer (explorer). Imports matplotlib and
ipywidgets where they are used; imports from vitlab.methods and below."""
