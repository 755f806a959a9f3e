"""symwire for Python: the codec (symwire.codec), the golden-vector checker
(symwire.vectors)."""
