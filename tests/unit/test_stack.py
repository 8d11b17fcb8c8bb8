from tests.unit.conftest import StackRun


def test_prod_example_builds_the_whole_stack(run_stack) -> None:
    run: StackRun = run_stack()
    for r in run.mocks.resources:
        print(r.typ, r.name)
    print(run.exports)
