"""gpuforge: provision Linux GPU hosts that serve open-weight models, with Ansible."""

__version__ = "0.1.0"
