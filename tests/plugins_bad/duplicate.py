import labrunner


class Counter(labrunner.Lab):
    name = "counter"
    title = "Another counter"

    def run(self, ctx):
        pass


@labrunner.hookimpl
def register_labs(register):
    register(Counter())
