"""PyTorch reference implementation of LaTtE-Flow (arXiv 2506.06952) as this project defines it.

See docs/reference.md. Everything here runs on torch 1.13 (Debian) and 2.x with numpy only.
"""
