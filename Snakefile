"""segsubmit's top-level entry point: the workflow is workflow/Snakefile (the catalog's
standard place), included here so that `snakemake` in the repository finds it. An included
file's `default_target` does not carry over to the including one, hence the rule below."""


include: "workflow/Snakefile"


rule default:
    default_target: True
    input:
        rules.all.input,
