"""The searcher's working copy of a stratum's Optuna study: asked and told in memory, each
change written through to the stored study at once, in as few transactions as it takes.

Asking the stored study directly cost ~50 ms a trial on SQLite and telling it ~25 ms, on
the path from one trial's end to the next one's start (bench/README.md): each suggested
parameter is its own commit, and every ask and every TPE draw reads the running trials
back from the database. The copy is made after `reconcile` has settled the stored study,
and during a session only its driver writes that study (docs/failures.md), so both hold the
same trials in the same order and the sampler (the stored study's own object, seeded as
open_study made it) draws what it would have drawn from the stored study.

The stored study stays the record. It gets an asked trial before Tune hears of it: a new
one in one transaction (number, parameters, the sampler's attributes), an enqueued retry
by its parameters and attributes and then, last, its state (`_take`); an intermediate
value when reported; a trial's end (its run id, then its state and values) before the
searcher returns. A change the database refuses half-way leaves the copy ahead of it; the
copy is then made again from the stored study before its next use, so the two never
number a trial differently.
"""

from __future__ import annotations

from contextlib import contextmanager

import optuna
from optuna.trial import FrozenTrial, TrialState

from study.errors import StudyError


class Mirror:
    def __init__(self, stored: optuna.Study):
        self.stored = stored
        self._memory: optuna.Study | None = self._copy()  # of the study reconcile settled

    @property
    def memory(self) -> optuna.Study:
        """The copy, made again from the stored study after a change to it failed."""
        if self._memory is None:
            self._memory = self._copy()
        return self._memory

    def _copy(self) -> optuna.Study:
        copy = optuna.create_study(
            storage=optuna.storages.InMemoryStorage(),
            sampler=self.stored.sampler,
            directions=self.stored.directions,
        )
        for t in self.stored.get_trials(deepcopy=False):  # in number order: numbers match
            copy._storage.create_new_trial(copy._study_id, template_trial=t)
        return copy

    @contextmanager
    def _writing(self):
        """A change that fails half-way (the database away) leaves the copy ahead of the
        stored study: the copy is dropped, and made again before its next use."""
        try:
            yield
        except BaseException:
            self._memory = None
            raise

    def ask(self, suggest) -> tuple[FrozenTrial, int]:
        """A trial asked of the copy, its parameters drawn by `suggest(trial)`, then written
        to the stored study: (the trial, its id in the stored study)."""
        with self._writing():
            copy = self.memory
            waiting = {
                t.number: t
                for t in copy._storage.get_all_trials(
                    copy._study_id, deepcopy=True, states=(TrialState.WAITING,)
                )
            }
            trial = copy.ask()
            suggest(trial)
            asked = copy._storage.get_trial(trial._trial_id)
            store = self.stored._storage
            if asked.number in waiting:  # an enqueued retry: see _take
                stored_id = self.stored_id(asked.number)
                self._take(stored_id, waiting[asked.number], asked)
            else:
                stored_id = store.create_new_trial(self.stored._study_id, template_trial=asked)
                if self.stored_id(asked.number) != stored_id:  # its cache knows the number
                    self._another_writer(asked.number)
        return asked, stored_id

    def _take(self, stored_id: int, before: FrozenTrial, asked: FrozenTrial) -> None:
        """An enqueued trial, asked of the copy, written to the stored study. Optuna's
        storage has no call that writes a WAITING trial's parameters and state in one
        commit (each parameter is a commit of its own), so the trial gets its parameters
        and attributes while still WAITING and is taken (RUNNING) by the last commit. A
        write cut short (a driver killed, the database away) leaves it WAITING, holding
        part of the parameters it was enqueued with: the next ask takes it again, under
        its number, with all of them (those it holds, the rest fixed by the enqueue). A
        RUNNING trial, which a later session runs again as it is, never holds part of its
        parameters. Another process that took the trial meanwhile gets the enqueued
        parameters it would have drawn itself, and the state's write is refused."""
        store = self.stored._storage
        for name, value in asked.params.items():
            if name not in before.params:  # not written by an ask cut short
                dist = asked.distributions[name]
                store.set_trial_param(stored_id, name, dist.to_internal_repr(value), dist)
        self._attrs(stored_id, before, asked)
        if not store.set_trial_state_values(stored_id, TrialState.RUNNING):
            self._another_writer(asked.number)  # it was no longer WAITING

    def stored_id(self, number: int) -> int:
        return self.stored._storage.get_trial_id_from_study_id_trial_number(
            self.stored._study_id, number
        )

    def report(self, number: int, stored_id: int, value: float, step: int) -> None:
        """An intermediate value (an early-stopping scheduler's), kept by both."""
        with self._writing():
            copy = self.memory
            memory_id = self._memory_id(copy, number)
            optuna.trial.Trial(copy, memory_id).report(value, step)
            kept = copy._storage.get_trial(memory_id).intermediate_values.get(step)
            if kept is not None:  # Trial.report ignores a step it has (with a warning)
                self.stored._storage.set_trial_intermediate_value(stored_id, step, kept)

    def tell(
        self, number: int, stored_id: int, values=None, state=None, user_attrs: dict | None = None
    ) -> None:
        """A trial's end, told to the copy (so that its sampler sees it), then written to
        the stored study as the copy decided it: `user_attrs` first, then the attributes
        the sampler set, then state and values."""
        with self._writing():
            copy = self.memory
            memory_id = self._memory_id(copy, number)
            before = copy._storage.get_trial(memory_id)  # what the stored study holds
            for key, value in (user_attrs or {}).items():
                self.stored._storage.set_trial_user_attr(stored_id, key, value)
                copy._storage.set_trial_user_attr(memory_id, key, value)
            copy.tell(number, values, state=state)
            told = copy._storage.get_trial(memory_id)
            self._attrs(stored_id, before, told, user=False)
            self.stored._storage.set_trial_state_values(stored_id, told.state, told.values)

    def _another_writer(self, number: int):
        raise StudyError(
            f"Optuna study {self.stored.study_name!r} no longer matches this driver's copy "
            f"at trial {number}: another process is writing it, and only the study's driver "
            f"may (docs/failures.md)"
        )

    @staticmethod
    def _memory_id(copy: optuna.Study, number: int) -> int:
        return copy._storage.get_trial_id_from_study_id_trial_number(copy._study_id, number)

    def _attrs(
        self, stored_id: int, before: FrozenTrial, after: FrozenTrial, user: bool = True
    ) -> None:
        """The attributes `after` has that `before` (what the stored trial holds) lacks:
        those the sampler set."""
        store = self.stored._storage
        for key, value in after.system_attrs.items():
            if before.system_attrs.get(key, _NONE) != value:
                store.set_trial_system_attr(stored_id, key, value)
        for key, value in after.user_attrs.items() if user else ():
            if before.user_attrs.get(key, _NONE) != value:
                store.set_trial_user_attr(stored_id, key, value)


_NONE = object()
