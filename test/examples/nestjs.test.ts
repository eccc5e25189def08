import { vi } from 'vitest';
import { stockRecipeSuite } from './stock-recipe.js';

stockRecipeSuite('examples/nestjs', {
  start: async (inventoryUrl) => {
    // `@resilient` builds one pipeline per decorated method, when the class is defined: a fresh copy of
    // the module gives each test a fresh circuit breaker.
    vi.resetModules();
    const { start } = await import('../../examples/nestjs/app.js');
    return start({ port: 0, inventoryUrl });
  },
  slow: { delay: 800, within: 800 },
});
