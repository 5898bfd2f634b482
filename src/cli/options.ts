/** commander's options and their --help, made from the options table (src/core/options.ts). */
import { Option, type Command } from 'commander';
import { DEFAULT_MODEL_ID, MODEL_REGISTRY } from '../backbone/registry.js';
import { attributeName, optionsFor, type CommandName, type OptionDef } from '../core/options.js';

/** What the table (at the bottom of the layers) cannot know: the registry's ids and default model. */
function withRegistry(def: OptionDef): OptionDef {
  if (def.key !== 'model') return def;
  return { ...def, default: DEFAULT_MODEL_ID, help: def.help.replace('registry id', `registry id (${MODEL_REGISTRY.map((e) => e.id).join(', ')})`) };
}

function commanderOption(table: OptionDef, command: CommandName): Option {
  const def = withRegistry(table);
  const opt = new Option(def.short ? `${def.short}, ${def.flag}` : def.flag, def.helpFor?.[command] ?? def.help);
  // --help lists the choices; the value itself is checked with the table, so the error is ours.
  if (def.choices) opt.choices(def.choices).argParser((v: string) => v);
  if (def.default !== undefined && def.type !== 'boolean') opt.default(def.default, def.defaultText);
  if (def.required?.includes(command)) opt.makeOptionMandatory();
  if (def.env) opt.env(def.env);
  return opt;
}

/** Adds every option the table gives `command`, in the table's order. */
export function addTableOptions(cmd: Command, command: CommandName): Command {
  const defs = optionsFor(command);
  for (const def of defs) cmd.addOption(commanderOption(def, command));
  return cmd;
}

/**
 * An empty environment variable counts as unset (SPP_EXTRACT_MODEL= in a job script), not as an empty
 * value: run before the values are checked.
 */
export function unsetEmptyEnvironment(cmd: Command, command: CommandName): void {
  for (const def of optionsFor(command).filter((d) => d.env)) {
    const name = attributeName(def);
    if (cmd.getOptionValueSource(name) === 'env' && String(cmd.getOptionValue(name)).trim() === '') {
      cmd.setOptionValueWithSource(name, withRegistry(def).default, 'default');
    }
  }
}
