"""Build script: the package tree plus the two data folders kept at the top of the repository (the project's card puts
them there), shipped inside the wheel as vpbx.prompts and vpbx.asterisk_conf and read with importlib.resources.
Everything else (metadata, dependencies, entry points) is in setup.cfg."""
from setuptools import find_packages, setup

DATA_PACKAGES = {"vpbx.prompts": "prompts", "vpbx.asterisk_conf": "asterisk-conf"}

setup(
    packages=find_packages(include=["vpbx", "vpbx.*"]) + list(DATA_PACKAGES),
    package_dir=DATA_PACKAGES,
    package_data={"vpbx.prompts": ["*/*.wav", "README.md"], "vpbx.asterisk_conf": ["*.conf"]},
    exclude_package_data={"vpbx.prompts": ["build.py"]},
)
