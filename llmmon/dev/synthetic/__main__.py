"""``python -m llmmon.dev.synthetic --out DIR``: write a data set and print the generation rate."""

from llmmon.dev.synthetic.objects import main

main()
