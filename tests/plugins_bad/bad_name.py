import labrunner


class BadName(labrunner.Lab):
    name = "Bad-Name"
    title = "A lab with an invalid name"

    def run(self, ctx):
        pass


@labrunner.hookimpl
def register_labs(register):
    register(BadName())
