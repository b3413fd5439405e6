"""pip-installable densekit (``pip install -e . --no-build-isolation``).

The OpenMMLab stack is fragile to install (mmcv must be compiled for the local
torch); ``tools/setup_env.sh`` does that.  ``setup.py`` declares the package,
its pinned runtime requirements and densekit's compiled ops
(``densekit._ext``: the CPU selective scan), built with torch's
``cpp_extension`` when torch is importable at build time, as mmcv builds its
ops. ``python setup.py build_ext --inplace`` rebuilds them in a checkout.

Environment variables:
    DENSEKIT_WITH_OPS=0     skip the compiled ops (densekit then runs its
                            pure-PyTorch paths, with a one-line warning).
    DENSEKIT_CPU_FLAGS      compiler flags for the target CPU; default
                            ``-march=native`` (the ops are built on the
                            machine that runs them); ``-mavx2 -mfma`` or ``''``
                            for a portable build.
"""
import glob
import os
import os.path as osp
import shlex

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version():
    namespace = {}
    with open(osp.join(HERE, 'densekit', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def read_requirements(name):
    path = osp.join(HERE, 'requirements', name)
    requirements = []
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-r'):
                requirements.append(line)
    return requirements


def make_ext_modules():
    """``(ext_modules, cmdclass)`` for densekit's compiled ops, or empty when
    torch is not importable or ``DENSEKIT_WITH_OPS=0``."""
    if os.environ.get('DENSEKIT_WITH_OPS', '1') == '0':
        return [], {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        return [], {}
    sources = sorted(glob.glob(osp.join('densekit', 'ops', 'csrc', '*.cpp')))
    cpu_flags = shlex.split(os.environ.get('DENSEKIT_CPU_FLAGS',
                                           '-march=native'))
    ext = CppExtension(
        'densekit._ext',
        sources=sources,
        # SIMD through GCC/Clang vector extensions (width from cpu_flags),
        # threads through at::parallel_for
        extra_compile_args={'cxx': [
            '-O3', *cpu_flags,
            # GCC 12's avx512fintrin.h trips this warning on its own code
            '-Wno-maybe-uninitialized'
        ]})
    return [ext], {'build_ext': BuildExtension.with_options(use_ninja=True)}


EXT_MODULES, CMDCLASS = make_ext_modules()

setup(
    name='densekit',
    version=read_version(),
    description='Dense prediction (detection, segmentation, medical, anomaly, '
    'streaming) on the OpenMMLab stack',
    long_description=open(osp.join(HERE, 'README.md')).read()
    if osp.exists(osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tools', 'configs', 'demo')),
    include_package_data=True,
    python_requires='>=3.8',
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'optional': read_requirements('optional.txt'),
    },
    ext_modules=EXT_MODULES,
    cmdclass=CMDCLASS,
    license='Apache License 2.0',
    zip_safe=False,
)
