from setuptools import find_packages, setup

setup(
    name="a2mim",
    version="0.1.0",
    description="A2MIM (architecture-agnostic masked image modeling) for Hugging Face Transformers: ViT, ResNet and ConvNeXt",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["modeling_a2mim", "modeling_a2mim.*"]),
    package_data={"modeling_a2mim": ["data/fashion_mnist_mini/*"]},
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "transformers>=5.20,<6",  # 5.20: A2MIMConfig's SubConfigSpec; make test checks both ends (README, Development)
        "datasets>=4.0",
        "accelerate>=1.10",
        "evaluate>=0.4.5",
        "huggingface_hub>=1.0",
        "safetensors>=0.4",
        "pillow>=10",
        "matplotlib>=3.7",
        "pyyaml>=6",
        "timm>=1.0",
        "scikit-learn>=1.3",
        "torchmetrics>=1.4",  # COCO mAP of run_object_detection.py (MeanAveragePrecision) ...
        "pycocotools>=2.0.7",  # ... with the pycocotools backend
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.5", "tensorboard>=2.15", "parameterized>=0.9"],
    },
)
