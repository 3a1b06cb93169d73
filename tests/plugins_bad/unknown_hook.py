import labrunner


@labrunner.hookimpl
def register_lab(register):  # misspelt: the hook is register_labs
    pass
