"""The accounts app: registration, e-mail verification, login against the directory and provisioning status."""
