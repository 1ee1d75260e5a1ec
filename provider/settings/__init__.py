"""Settings: one YAML file plus flow files, parsed once into frozen, validated models.

`models` holds the models, `loader` reads and checks the files (all problems at once, each
with its file and YAML path), `warnings` finds what works but is unsafe.
"""
from provider.settings.loader import load_settings
from provider.settings.models import (
    BrandingSettings,
    BuiltinDirectorySettings,
    ClientSettings,
    DemoSettings,
    KeycloakDirectorySettings,
    KeycloakEnrollmentSettings,
    LockoutSettings,
    Settings,
    SettingsError,
    SqlEnrollmentSettings,
    StateSettings,
    TokenSettings,
)

__all__ = [
    "BrandingSettings", "BuiltinDirectorySettings", "ClientSettings", "DemoSettings", "KeycloakDirectorySettings",
    "KeycloakEnrollmentSettings", "LockoutSettings", "Settings", "SettingsError", "SqlEnrollmentSettings",
    "StateSettings", "TokenSettings", "load_settings",
]
