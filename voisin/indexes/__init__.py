"""Index structures. Each decides *what* to compare; kernels do the arithmetic."""
